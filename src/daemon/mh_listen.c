/* mh_listen: being written (issue 5) */
typedef int mh_listen_placeholder;
